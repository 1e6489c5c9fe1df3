# Owner and mode are set only when the directory is created, so an administrator's choices
# survive upgrades.
ensure_datadir() {
	if [ ! -d /var/lib/hanode ]; then
		mkdir -p /var/lib/hanode
		chown hanode:hanode /var/lib/hanode
		chmod 0750 /var/lib/hanode
	fi
}
