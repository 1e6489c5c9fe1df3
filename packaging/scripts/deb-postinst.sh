# needs: ensure_user ensure_datadir systemd_running restart_if_active first_install_hint
# $1: configure | abort-upgrade | abort-remove | abort-deconfigure; with configure, $2 is the
# version configured before: empty on a first install, set on an upgrade.
case "$1" in
configure)
	ensure_user
	ensure_datadir
	if systemd_running; then
		systemctl daemon-reload || true
		if [ -n "$2" ]; then
			restart_if_active
		fi
	fi
	if [ -z "$2" ]; then
		first_install_hint
	fi
	;;
esac
exit 0
