/** The agent's SQLite registry (see db.ts). */
export { openRegistry, Registry } from "./db.js";
export { MIGRATIONS, appliedMigrations, migrate, type Migration } from "./migrations.js";
export { ServiceStore, type ServiceInput, type ServiceRow } from "./services.js";
export {
  ComponentStore,
  NO_HEALTH,
  type ComponentHealth,
  type ComponentInput,
  type ComponentRow,
  type ObservedInput,
  type PendingOperation,
  type RoutePort,
} from "./components.js";
export { ProxyRouteStore, type ProxyRouteRow } from "./proxy-routes.js";
export { RouteStore, type HeldPort, type RouteInput, type RouteRow } from "./routes.js";
export {
  EventStore,
  STATE_EVENT,
  type EventFilter,
  type EventInput,
  type EventRow,
} from "./events.js";
export {
  RevisionStore,
  type RevisionInput,
  type RevisionKind,
  type RevisionOutcome,
  type RevisionRow,
} from "./revisions.js";
