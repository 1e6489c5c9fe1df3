# needs: systemd_running
# $1: remove | upgrade | deconfigure | failed-upgrade. On upgrade the service keeps running
# until postinst restarts it with the new binary.
case "$1" in
remove | deconfigure)
	if systemd_running; then
		systemctl stop hanode.service || true
	fi
	;;
esac
exit 0
