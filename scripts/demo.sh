#!/usr/bin/env bash
# The main job, on a fresh Debian machine as root: install and build, start a
# local agent (node "local") on loopback, point the CLI at it, deploy the
# example services, show `mcp ps`, and fetch every route to show the
# variables the agent injected. Safe to run again: each step reuses what the
# previous run left.
#
#   scripts/demo.sh          run the demo (npm run demo does the same)
#   scripts/demo.sh --down   undeploy the examples and stop the demo agent
#
# env: MCP_AGENT_DIR (default /srv/mcp), MCP_LISTEN (default 127.0.0.1:9444)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
AGENT_DIR=${MCP_AGENT_DIR:-/srv/mcp}
LISTEN=${MCP_LISTEN:-127.0.0.1:9444}
CLI_CONFIG=${MCP_CONFIG:-${XDG_CONFIG_HOME:-$HOME/.config}/mcp/mcp.toml}
EXAMPLES=(hello multi legacy)
PID_FILE=$AGENT_DIR/agent.pid

say() { printf '\n== %s\n' "$*"; }
die() {
  printf 'demo: %s\n' "$*" >&2
  exit 1
}
mcp() { node "$ROOT/dist/mcp.mjs" --config "$CLI_CONFIG" "$@"; }
agent_running() { [ -s "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

if [ "${1:-}" = "--down" ]; then
  for s in "${EXAMPLES[@]}"; do mcp undeploy "$s" || true; done
  if agent_running; then kill "$(cat "$PID_FILE")" && echo "stopped agent $(cat "$PID_FILE")"; fi
  rm -f "$PID_FILE"
  # The agent leaves its HAProxy serving (the next start adopts it): stop it too.
  proxy_pid=$(cat "$AGENT_DIR/proxy/haproxy.pid" 2>/dev/null || true)
  if [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null; then echo "stopped the agent's haproxy $proxy_pid"; fi
  exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (it installs Podman and runs containers)"
cd "$ROOT"

say "install and build"
[ -d node_modules ] || npm ci --no-audit --no-fund
scripts/setup.sh
npm run --silent build
chmod +x dist/mcp.mjs dist/bin/mcp-agent.js
ln -sf "$ROOT/dist/mcp.mjs" /usr/local/bin/mcp
ln -sf "$ROOT/dist/bin/mcp-agent.js" /usr/local/bin/mcp-agent
echo "mcp and mcp-agent are on PATH (/usr/local/bin)"

say "local agent (node local) on $LISTEN"
if [ ! -f "$AGENT_DIR/mcp-agent.toml" ]; then
  node dist/bin/mcp-agent.js init --dir "$AGENT_DIR" --node local --listen "$LISTEN"
fi
if agent_running; then
  echo "agent already running (pid $(cat "$PID_FILE"))"
else
  # The log is appended to: only lines after this start count as "ready".
  log_lines=$(wc -l <"$AGENT_DIR/agent.log" 2>/dev/null || echo 0)
  setsid node dist/bin/mcp-agent.js serve --config "$AGENT_DIR/mcp-agent.toml" \
    >>"$AGENT_DIR/agent.log" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  ready=""
  for _ in $(seq 1 100); do
    if tail -n +"$((log_lines + 1))" "$AGENT_DIR/agent.log" 2>/dev/null |
      grep -q '"msg":"agent ready"'; then
      ready=1
      break
    fi
    agent_running || die "the agent exited; see $AGENT_DIR/agent.log"
    sleep 0.1
  done
  [ -n "$ready" ] || die "the agent did not get ready within 10 s; see $AGENT_DIR/agent.log"
  echo "agent started (pid $(cat "$PID_FILE"), log $AGENT_DIR/agent.log)"
fi

say "CLI config $CLI_CONFIG"
if [ ! -f "$CLI_CONFIG" ]; then
  mkdir -p "$(dirname "$CLI_CONFIG")/services"
  # The agent's ready-made CLI config, with the services dir next to the config.
  sed "s#^dir = .*#dir = \"$(dirname "$CLI_CONFIG")/services\"#" "$AGENT_DIR/mcp.toml" >"$CLI_CONFIG"
  chmod 600 "$CLI_CONFIG"
  echo "written"
elif ! grep -q '^name = "local"$' "$CLI_CONFIG"; then
  mcp node add local "$LISTEN" --ca "$AGENT_DIR/ca.pem" --token-file "$AGENT_DIR/token"
else
  echo "kept (it already has node local)"
fi
SERVICES_DIR=$(node --input-type=module -e '
  import { loadCliConfig } from "'"$ROOT"'/dist/config/cli.js";
  console.log((await loadCliConfig(process.argv[1])).services.dir);' "$CLI_CONFIG")
mkdir -p "$SERVICES_DIR"
for s in "${EXAMPLES[@]}"; do
  [ -f "$SERVICES_DIR/$s.toml" ] || cp "examples/$s.toml" "$SERVICES_DIR/"
done
echo "definitions in $SERVICES_DIR: ${EXAMPLES[*]}"

say "deploy"
for s in "${EXAMPLES[@]}"; do
  echo "mcp deploy $s"
  mcp deploy "$s"
done

say "mcp ps"
mcp ps

say "each route's page (the variables the agent injected)"
mcp list --json | node --input-type=module -e '
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const targets = [];
  for (const { services } of JSON.parse(input)) {
    for (const s of services) {
      for (const c of s.components) {
        for (const r of c.routes) if (r.hostPort) targets.push([`${s.name}/${c.name} ${r.name || "(PORT)"}`, r.hostPort]);
        for (const p of c.ports) targets.push([`${s.name}/${c.name} ${p}`, Number(p.split(":").at(-2))]);
      }
    }
  }
  for (const [what, port] of targets) {
    let vars = "no answer";
    for (let i = 0; i < 50; i++) {
      try {
        const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();
        vars = page.split("\n").filter((l) => /^(PORT[A-Z0-9_]*|GREETING|LOG_LEVEL)=/.test(l)).join(" ");
        break;
      } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    console.log(`${what.padEnd(28)} http://127.0.0.1:${port}/  ${vars}`);
  }'

say "mcp route list (the agent's HAProxy in front of the routes)"
ROUTE_CA=$AGENT_DIR/proxy/route-ca.crt
if [ -f "$ROUTE_CA" ] && mcp route list --node local; then
  say "each L7 route over HTTPS through the proxy (curl --cacert $ROUTE_CA --resolve ...)"
  l7=$(mcp route list --node local --json | node --input-type=module -e '
    let input = "";
    for await (const chunk of process.stdin) input += chunk;
    for (const r of JSON.parse(input)) if (r.mode === "l7") console.log(`${r.hostname} ${r.listener}`);')
  [ -n "$l7" ] || die "no L7 route is on the proxy"
  while read -r host listener; do
    page=""
    for _ in $(seq 1 50); do
      page=$(curl --silent --fail --cacert "$ROUTE_CA" --resolve "$host:$listener:127.0.0.1" \
        "https://$host:$listener/") && break
      sleep 0.1
    done
    [ -n "$page" ] || die "https://$host:$listener/ did not answer through the proxy"
    vars=$(printf '%s\n' "$page" | grep -E '^(PORT[A-Z0-9_]*|GREETING|LOG_LEVEL)=' | tr '\n' ' ')
    printf '%-36s %s\n' "https://$host:$listener/" "$vars"
  done <<<"$l7"
  echo "(L4 routes pass TLS through by SNI: their container must speak TLS itself; the examples' do not)"
else
  echo "this agent has no [proxy] (initialised with --no-proxy, or before the proxy existed)"
fi

say "done: try mcp ps, mcp list, mcp status, mcp route list, mcp cert ca, mcp stop hello, mcp start hello"
echo "see it live: mcp ui (a page on http://127.0.0.1:7700/); leave: mcp export multi --format kube|compose"
