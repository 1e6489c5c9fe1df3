# needs: systemd_running
# $1: remove | purge | upgrade | disappear | failed-upgrade | abort-install | abort-upgrade.
# remove keeps /var/lib/hanode (a cluster member's certificates and data), the service
# account and whether the service is enabled, for a reinstall; purge deletes them.
case "$1" in
remove)
	if systemd_running; then
		systemctl daemon-reload || true
	fi
	;;
purge)
	rm -rf /var/lib/hanode
	rm -f /etc/systemd/system/multi-user.target.wants/hanode.service
	if getent passwd hanode >/dev/null && command -v userdel >/dev/null; then
		userdel hanode || true
	fi
	if getent group hanode >/dev/null && command -v groupdel >/dev/null; then
		groupdel hanode || true
	fi
	if systemd_running; then
		systemctl daemon-reload || true
	fi
	;;
esac
exit 0
