# needs: systemd_running
# %preun, $1: 0 on erase, 1 (or more) when an upgrade removes the old version. rpm has no
# purge, so erasing also disables the service.
if [ "$1" -eq 0 ]; then
	if systemd_running; then
		systemctl stop hanode.service || true
	fi
	systemctl --no-reload disable hanode.service >/dev/null 2>&1 || true
fi
exit 0
