"""The embedded container runtime: OCI runtime-spec in, isolated process out.

spec       image config + overrides -> runtime spec (runc's defaults, Docker's capabilities)
flags      docker's run flags (--cap-add, --ulimit, --tmpfs, --add-host, -v, ...) -> spec pieces
resources  --memory, --memory-swap, --pids-limit, --cpus, --cpu-shares -> linux.resources
cgroups    a cgroup per container: placed as runc would, limits and device rules written, removed after
etcfiles   /etc/hosts, /etc/hostname, /etc/resolv.conf for a run (--add-host, --dns..., --no-hosts)
container  Container(spec, lowers, upper).run() -> exit status: what `run` and RUN steps call
helper     the executor process (a fresh interpreter): namespaces, PID 1, signals, exit status
prestart   the executor started ahead of its container (helper_start.py, its script), config by pipe
rootfs     the container's mounts, /dev, masked paths, pivot_root      (stdlib only, like
console    the -t terminal, made in the container's devpts             helper, linux,
linux      ctypes syscalls: unshare, mount, pivot_root, capabilities   users and paths)
users      USER -> uid, gid, groups from the image's /etc/passwd and /etc/group
paths      symlink-safe joins under the container's root
overlay    overlay descriptions, host-side mounts for runc, tidying build upperdirs
idmap      rootless uid/gid maps (newuidmap/newgidmap for subordinate ranges)
netstack   --network private: slirp4netns attached to the container's namespace (embedded and runc)
oci_runtime  the same spec under runc
image, launch  an image in the local store -> config + snapshot lowerdirs -> a container
containers     the containers `run` keeps without --rm: state, listing, removal

This package imports no registry or transport code.
"""
