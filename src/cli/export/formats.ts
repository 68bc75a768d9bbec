/** What `mcp service export --format` writes (kept apart so the command tree loads nothing else). */
export const EXPORT_FORMATS = ["toml", "kube", "compose"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
