/**
 * The Agent SDK's package.json, for its version: the SDK does not export that path, but Bun
 * resolves it (and bundles it into the single executable).
 */
declare module "@anthropic-ai/claude-agent-sdk/package.json" {
  const sdkPackage: { version: string };
  export default sdkPackage;
}
