/** arktype's global configuration; imported by shared/arktype.ts before arktype itself loads. */
import { configure } from "arktype/config";

// Validators interpreted rather than compiled to JS: arktype loads ~50 ms faster and ~13 MB
// lighter, and the runner validates a handful of small objects per run, where speed is moot.
configure({ jitless: true });
