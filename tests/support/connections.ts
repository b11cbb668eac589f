/** Raw TCP connections to a local server, opened and held by a test, destroyed after it. */
import { connect, type Socket } from "node:net";
import { onTeardown } from "./teardown.ts";

/**
 * Opens `count` connections to 127.0.0.1:`port`; each sends `first` (if any) once connected.
 * Resolves once each is either open or already closed by the server.
 */
export async function openConnections(port: number, count: number, first?: string): Promise<Socket[]> {
  const sockets: Socket[] = [];
  onTeardown(() => {
    for (const socket of sockets) socket.destroy();
  });
  await Promise.all(
    Array.from({ length: count }, () => {
      const socket = connect(port, "127.0.0.1");
      sockets.push(socket);
      socket.on("error", () => {});
      return new Promise<void>((settled) => {
        socket.once("connect", () => {
          if (first) socket.write(first);
          settled();
        });
        socket.once("close", () => settled());
      });
    }),
  );
  return sockets;
}
