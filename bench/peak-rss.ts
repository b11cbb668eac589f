import { readFileSync } from "node:fs";

/**
 * Watches one process's own peak RSS (VmHWM in /proc/<pid>/status) while it lives. VmHWM is the
 * peak of that process's address space only, so children it spawns (Claude Code) are not counted.
 * It only ever grows, so the last successful read is the peak up to that moment; sampling every
 * few ms keeps what is missed to the last few ms of the process's life.
 */
export class PeakRssSampler {
  private peakKb = 0;
  private readonly timer: Timer;

  constructor(
    private readonly pid: number,
    intervalMs = 5,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    try {
      const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${this.pid}/status`, "utf8"))?.[1]);
      if (kb > this.peakKb) this.peakKb = kb;
    } catch {
      // The process is gone (or a zombie without memory): keep the last value.
    }
  }

  /** Stops sampling; the peak in MB. */
  stop(): number {
    clearInterval(this.timer);
    return this.peakKb / 1024;
  }
}
