#!/usr/bin/env bash
# Prepares this machine to run MCP's agent and tests on real Podman.
#
#   scripts/setup.sh            install + configure + image (the default)
#   scripts/setup.sh install    Debian packages only (when missing)
#   scripts/setup.sh configure  /etc/containers workarounds this machine needs
#   scripts/setup.sh image      build localhost/mcp-httpenv:v1 offline
#
# Idempotent: every step checks first and does nothing when already done.
# Needs root and Debian's apt. Nothing is pulled from a container registry.
set -euo pipefail

IMAGE=localhost/mcp-httpenv:v1
PACKAGES=(podman runc conmon netavark aardvark-dns slirp4netns uidmap fuse-overlayfs
  catatonit iptables busybox-static curl openssl iproute2 haproxy wrk
  knot bind9-dnsutils pebble prometheus podman-compose chromium)
CONF=/etc/containers/containers.conf
MARKER="# written by mcp scripts/setup.sh"

say() { printf '[setup] %s\n' "$*"; }
die() {
  printf '[setup] error: %s\n' "$*" >&2
  exit 1
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "packages present ($(podman --version))"
    return
  fi
  [ "$(id -u)" = 0 ] || die "installing ${missing[*]} needs root"
  say "installing ${missing[*]}"
  apt-get update -qq
  # Debian would start its own haproxy and knot services on install: the
  # agent runs its own HAProxy and the DNS tests their own knotd, so no
  # package may start a service here (a policy-rc.d saying no, only while
  # installing, unless one is there).
  local policy=/usr/sbin/policy-rc.d ours=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$ours" ] || rm -f "$policy"
  # pebble (the ACME test server, tests only) ships just its two binaries, no
  # service: nothing to stop, and a pkill by name would hit other tests' instances.
  if pgrep -f 'haproxy.*/etc/haproxy/haproxy.cfg' >/dev/null; then
    pkill -f 'haproxy.*/etc/haproxy/haproxy.cfg' || true
    say "stopped the haproxy service Debian started"
  fi
  # The service's knotd runs as user knot (Debian's /etc/knot/knot.conf);
  # the tests' own run as root from a temp dir.
  if pgrep -u knot -x knotd >/dev/null; then
    pkill -u knot -x knotd || true
    say "stopped the knot service Debian started"
  fi
  say "installed ($(podman --version))"
}

# Each workaround is applied only when this machine needs it (see the project notes):
#  - hybrid/v1 cgroups: crun refuses them, runc works;
#  - root without CAP_SYS_RESOURCE: podman's default rlimits cannot be set;
#  - no systemd as PID 1: cgroupfs manager and file events logger.
desired_conf() {
  local runtime=crun cgroup_manager=systemd events=journald cgfs capeff
  cgfs=$(stat -fc %T /sys/fs/cgroup)
  [ "$cgfs" = cgroup2fs ] || runtime=runc
  if [ ! -d /run/systemd/system ] || [ "$cgfs" != cgroup2fs ]; then
    cgroup_manager=cgroupfs
    events=file
  fi
  echo "$MARKER"
  echo "[containers]"
  capeff=$((16#$(awk '/^CapEff/ {print $2}' /proc/self/status)))
  if (((capeff >> 24 & 1) == 0)); then
    local nofile nproc
    nofile=$(ulimit -Hn)
    [ "$nofile" = unlimited ] && nofile=1048576
    nproc=$(ulimit -Hu)
    [ "$nproc" = unlimited ] && nproc=32768
    ((nproc > 32768)) && nproc=32768
    echo "default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=${nproc}:${nproc}\"]"
  fi
  echo
  echo "[engine]"
  echo "runtime = \"$runtime\""
  echo "cgroup_manager = \"$cgroup_manager\""
  echo "events_logger = \"$events\""
  echo
  echo "[network]"
  # Debian ships a CNI config without the CNI plugins: pin netavark.
  echo "network_backend = \"netavark\""
}

configure() {
  local want
  want=$(desired_conf)
  if [ -f "$CONF" ] && [ "$(cat "$CONF")" = "$want" ]; then
    say "$CONF up to date"
  else
    if [ -f "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARKER"; then
      cp "$CONF" "$CONF.before-mcp"
      say "kept the previous $CONF as $CONF.before-mcp"
    fi
    mkdir -p /etc/containers
    printf '%s\n' "$want" >"$CONF"
    say "wrote $CONF"
  fi
  command -v iptables >/dev/null || die "iptables is not on PATH: podman run -p would fail"
}

# The test image: busybox-static, serving on every $PORT / $PORT_<NAME> a page
# that lists the container's environment, and exiting at once on SIGTERM.
build_image() {
  local work rootfs hash
  work=$(mktemp -d)
  rootfs=$work/rootfs
  mkdir -p "$rootfs"/{bin,etc,tmp,www/cgi-bin,proc,sys,dev,root}
  chmod 1777 "$rootfs/tmp"
  cp /bin/busybox "$rootfs/bin/busybox"
  local applet applets="sh httpd env sort sleep kill mkdir cat printf echo wc ls hostname true nc"
  for applet in $applets; do
    ln -s busybox "$rootfs/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
  cat >"$rootfs/bin/serve-env" <<'EOF'
#!/bin/sh
# Serves the container's environment over HTTP on $PORT and every $PORT_<NAME>.
#   /             the environment at start (sorted KEY=VALUE lines)
#   /health       "ok"
#   /cgi-bin/env  the environment, live
env | sort > /www/index.html
echo ok > /www/health
ports=$(env | sed -n 's/^PORT\(_[A-Z0-9_]*\)\{0,1\}=\([0-9][0-9]*\)$/\2/p' | sort -u)
[ -n "$ports" ] || ports=8080
pids=""
for p in $ports; do
  httpd -f -p "0.0.0.0:$p" -h /www &
  pids="$pids $!"
  echo "serve-env: listening on 0.0.0.0:$p"
done
trap 'echo "serve-env: stopping"; kill $pids 2>/dev/null; exit 0' TERM INT
wait
EOF
  ln -s busybox "$rootfs/bin/sed"
  cat >"$rootfs/www/cgi-bin/env" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\n'
env | sort
EOF
  chmod 755 "$rootfs/bin/serve-env" "$rootfs/www/cgi-bin/env"
  hash=$( (cat /bin/busybox "$rootfs/bin/serve-env" "$rootfs/www/cgi-bin/env" && echo "$applets") | sha256sum | cut -c1-16)
  if [ "$(podman image inspect --format '{{index .Labels "mcp.build"}}' "$IMAGE" 2>/dev/null)" = "$hash" ]; then
    say "$IMAGE up to date"
    rm -rf "$work"
    return
  fi
  cat >"$work/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV PATH=/bin
LABEL mcp.build="$hash"
CMD ["/bin/serve-env"]
EOF
  podman build -q --network=none --pull=never -f "$work/Containerfile" -t "$IMAGE" "$work" >/dev/null
  rm -rf "$work"
  say "built $IMAGE ($hash)"
}

main() {
  case "${1:-all}" in
    all)
      install_packages
      configure
      build_image
      ;;
    install) install_packages ;;
    configure) configure ;;
    image) build_image ;;
    *) die "unknown step '$1' (all | install | configure | image)" ;;
  esac
}

main "$@"
