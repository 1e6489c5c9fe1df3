# needs: systemd_running
# %postun, $1: 0 on erase, 1 (or more) after an upgrade. Erasing keeps /var/lib/hanode and the
# hanode account: the data is a cluster member's state, and rpm has no purge to ask for its
# deletion (docs/install.md shows how to delete both by hand).
if systemd_running; then
	systemctl daemon-reload || true
fi
exit 0
