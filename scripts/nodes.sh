#!/usr/bin/env bash
# Several MCP "nodes" on this one machine, for the multi-node tests and the
# benchmarks. Each node is a network namespace with its own address and its
# own Podman (storage, run dir, temp dir, locks, events), so two agents see two
# independent container hosts, like two machines on a LAN.
#
#   scripts/nodes.sh up [N]          create nodes 1..N (default 2); does nothing already done
#   scripts/nodes.sh down            remove every node: containers, storage, namespaces, bridge
#   scripts/nodes.sh status          one line per node (exit 1 when none exists)
#   scripts/nodes.sh check [N]       exit 0 when nodes 1..N are fully up, 1 otherwise
#   scripts/nodes.sh env I           the node's settings as KEY=VALUE lines (for test helpers)
#   scripts/nodes.sh exec I CMD...   run CMD "inside" node I (its network + its Podman)
#   scripts/nodes.sh podman I ARGS   shorthand for `exec I podman ARGS`
#
# Layout (node I):
#   namespace   mcp-nI (/run/netns/mcp-nI), address 10.231.0.(10+I)/24 on eth0
#   wiring      veth mcp-nI-h (host side) on bridge mcpnodes0; the host has a
#               route to 10.231.0.0/24 over the bridge and NO address in that
#               range, so the range exists only inside the namespaces
#   podman      /var/lib/mcp-nodes/nI/{containers.conf,storage.conf,storage/}
#               and /run/mcp-nodes/nI/{storage,libpod} (runroot, tmp_dir)
#
# Commands run inside a node through `nsenter --net=...`, not `ip netns exec`:
# the latter remounts /sys, which hides /sys/fs/cgroup, and runc then fails.
# The test image is copied into every node's storage offline (podman save |
# load), and again when the host's copy changes.
#
# Needs root, iproute2, nsenter (util-linux) and Podman set up by setup.sh.
set -euo pipefail

NET=10.231.0 # /24 used only inside the node namespaces
BRIDGE=mcpnodes0
STATE=/var/lib/mcp-nodes
RUNDIR=/run/mcp-nodes
IMAGES=(localhost/mcp-httpenv:v1)

say() { printf '[nodes] %s\n' "$*"; }
die() {
  printf '[nodes] error: %s\n' "$*" >&2
  exit 1
}

ns_of() { echo "mcp-n$1"; }
addr_of() { echo "$NET.$((10 + $1))"; }
conf_of() { echo "$STATE/n$1/containers.conf"; }
storage_conf_of() { echo "$STATE/n$1/storage.conf"; }

check_index() {
  [[ $1 =~ ^[1-9][0-9]?$ ]] && (($1 <= 200)) || die "node index must be 1..200, got '$1'"
}

# Runs "$@" in node $1's network namespace with the node's Podman config.
in_node() {
  local i=$1
  shift
  exec nsenter --net="/run/netns/$(ns_of "$i")" \
    env CONTAINERS_CONF="$(conf_of "$i")" CONTAINERS_STORAGE_CONF="$(storage_conf_of "$i")" "$@"
}
node_podman() { (in_node "$1" podman "${@:2}"); }

have_ns() { [ -e "/run/netns/$1" ]; }

up_bridge() {
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link add "$BRIDGE" type bridge
    say "bridge $BRIDGE created"
  fi
  ip link set "$BRIDGE" up
  # The host reaches the nodes through the bridge; it gets no address there.
  ip route replace "$NET.0/24" dev "$BRIDGE"
}

up_namespace() {
  local i=$1 ns veth addr
  ns=$(ns_of "$i")
  veth="$ns-h"
  addr=$(addr_of "$i")
  have_ns "$ns" || ip netns add "$ns"
  if ! ip link show "$veth" >/dev/null 2>&1; then
    ip link add "$veth" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$veth" master "$BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" addr replace "$addr/24" dev eth0
  # Answers to the host (whose source address is outside the /24) go back over eth0.
  ip -n "$ns" route replace default dev eth0
}

# containers.conf replaces the system file rather than adding to it: start
# from the machine's (runtime, cgroups, ulimits workarounds) and give this
# node its own temp dir (events, exit files, locks) and file locks instead
# of the shared-memory ones every podman on the machine would otherwise share.
write_podman_conf() {
  local i=$1 dir tmp base
  dir=$STATE/n$i
  tmp=$RUNDIR/n$i/libpod
  mkdir -p "$dir/storage" "$RUNDIR/n$i/storage" "$tmp"
  base=/etc/containers/containers.conf
  [ -f "$base" ] || die "$base is missing: run scripts/setup.sh first"
  {
    echo "# node n$i: written by scripts/nodes.sh from $base"
    if grep -q '^\[engine\]' "$base"; then
      awk -v tmp="$tmp" '{ print } /^\[engine\][[:space:]]*$/ { print "tmp_dir = \"" tmp "\""; print "lock_type = \"file\"" }' "$base"
    else
      cat "$base"
      printf '\n[engine]\ntmp_dir = "%s"\nlock_type = "file"\n' "$tmp"
    fi
  } >"$dir/containers.conf.new"
  mv "$dir/containers.conf.new" "$(conf_of "$i")"
  printf '[storage]\ndriver = "overlay"\ngraphroot = "%s"\nrunroot = "%s"\n' \
    "$dir/storage" "$RUNDIR/n$i/storage" >"$(storage_conf_of "$i")"
}

image_id() { "$@" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true; }

# Copies each test image from the host's storage into the node's, unless the
# node already holds the same image ID.
load_images() {
  local i=$1 tar want have
  for IMAGE in "${IMAGES[@]}"; do
    want=$(image_id podman)
    [ -n "$want" ] || die "$IMAGE is not in the host's podman storage: run scripts/setup.sh first"
    have=$(image_id node_podman "$i")
    [ "$have" = "$want" ] && continue
    tar=$STATE/image-${want:0:16}.tar
    if [ ! -s "$tar" ]; then
      podman save -q -o "$tar.new" "$IMAGE"
      mv "$tar.new" "$tar"
    fi
    node_podman "$i" load -q -i "$tar" >/dev/null
    say "n$i: loaded $IMAGE"
  done
}

node_ready() {
  local i=$1 ns
  ns=$(ns_of "$i")
  have_ns "$ns" && [ -f "$(conf_of "$i")" ] && [ -f "$(storage_conf_of "$i")" ] &&
    ip -n "$ns" -4 addr show dev eth0 2>/dev/null | grep -q "inet $(addr_of "$i")/" &&
    ip link show "$ns-h" 2>/dev/null | grep -q "master $BRIDGE" &&
    ip route show "$NET.0/24" | grep -q "dev $BRIDGE"
}

cmd_up() {
  local n=${1:-2} i
  check_index "$n"
  [ "$(id -u)" = 0 ] || die "needs root"
  command -v nsenter >/dev/null || die "nsenter (util-linux) is not installed"
  mkdir -p "$STATE" "$RUNDIR"
  up_bridge
  for i in $(seq 1 "$n"); do
    up_namespace "$i"
    write_podman_conf "$i"
    load_images "$i"
    say "n$i up: namespace $(ns_of "$i"), address $(addr_of "$i")"
  done
}

cmd_check() {
  local n=${1:-2} i
  check_index "$n"
  for i in $(seq 1 "$n"); do node_ready "$i" || return 1; done
}

# Index of every node that has a namespace or a Podman store, once each.
existing() {
  local f
  {
    for f in /run/netns/mcp-n* "$STATE"/n*; do
      [ -e "$f" ] || continue
      f=${f##*/mcp-n}
      f=${f##*/n}
      [[ $f =~ ^[0-9]+$ ]] && echo "$f"
    done
  } | sort -nu
  return 0
}

cmd_status() {
  local i found=1
  for i in $(existing); do
    found=0
    if node_ready "$i"; then
      echo "n$i $(ns_of "$i") $(addr_of "$i") up"
    else
      echo "n$i $(ns_of "$i") $(addr_of "$i") incomplete"
    fi
  done
  return $found
}

cmd_down() {
  local i d m
  [ "$(id -u)" = 0 ] || die "needs root"
  for i in $(existing); do
    if [ -f "$(conf_of "$i")" ]; then
      # Containers first (their conmon and mounts), then the whole store. A
      # store whose namespace is already gone is cleaned from the host side.
      local run=(node_podman "$i")
      have_ns "$(ns_of "$i")" ||
        run=(env CONTAINERS_CONF="$(conf_of "$i")" CONTAINERS_STORAGE_CONF="$(storage_conf_of "$i")" podman)
      "${run[@]}" rm -af -t 0 >/dev/null 2>&1 || say "n$i: podman rm -af failed (continuing)"
      "${run[@]}" system reset -f >/dev/null 2>&1 || say "n$i: podman system reset failed (continuing)"
    fi
    ip netns del "$(ns_of "$i")" 2>/dev/null || true
    ip link del "$(ns_of "$i")-h" 2>/dev/null || true
    say "n$i removed"
  done
  ip route del "$NET.0/24" dev "$BRIDGE" 2>/dev/null || true
  ip link del "$BRIDGE" 2>/dev/null || true
  # Anything still mounted under the node stores (a podman that died mid-way).
  for d in "$STATE" "$RUNDIR"; do
    [ -d "$d" ] || continue
    while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v p="$d/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r)
  done
  rm -rf "$STATE" "$RUNDIR"
}

cmd_env() {
  local i=$1
  check_index "$i"
  echo "NODE=n$i"
  echo "NETNS=/run/netns/$(ns_of "$i")"
  echo "ADDRESS=$(addr_of "$i")"
  echo "CONTAINERS_CONF=$(conf_of "$i")"
  echo "CONTAINERS_STORAGE_CONF=$(storage_conf_of "$i")"
}

main() {
  local cmd=${1:-}
  shift || true
  case "$cmd" in
    up) cmd_up "$@" ;;
    down) cmd_down ;;
    status) cmd_status ;;
    check) cmd_check "$@" ;;
    env)
      [ $# = 1 ] || die "usage: nodes.sh env I"
      cmd_env "$1"
      ;;
    exec)
      [ $# -ge 2 ] || die "usage: nodes.sh exec I CMD [ARGS...]"
      check_index "$1"
      have_ns "$(ns_of "$1")" || die "node n$1 is not up (scripts/nodes.sh up $1)"
      in_node "$@"
      ;;
    podman)
      [ $# -ge 1 ] || die "usage: nodes.sh podman I [ARGS...]"
      check_index "$1"
      have_ns "$(ns_of "$1")" || die "node n$1 is not up (scripts/nodes.sh up $1)"
      in_node "$1" podman "${@:2}"
      ;;
    *) die "usage: nodes.sh up [N] | down | status | check [N] | env I | exec I CMD... | podman I ARGS..." ;;
  esac
}

main "$@"
