# needs: ensure_user ensure_datadir systemd_running restart_if_active first_install_hint
# %post, $1: 1 on install, 2 (or more) on upgrade. The new files are in place, so an upgrade
# restarts the service here.
ensure_user
ensure_datadir
if systemd_running; then
	systemctl daemon-reload || true
	if [ "$1" -ge 2 ]; then
		restart_if_active
	fi
fi
if [ "$1" -eq 1 ]; then
	first_install_hint
fi
exit 0
