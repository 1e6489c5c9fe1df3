# systemctl only makes sense when systemd is the running init (not in a chroot or container
# build).
systemd_running() {
	[ -d /run/systemd/system ]
}
