/**
 * arktype, configured for this project. Every module takes `type` from here, never from "arktype"
 * directly, so the configuration is applied before arktype builds its scopes.
 */
import "./arktype-config.ts";

export { type } from "arktype";
