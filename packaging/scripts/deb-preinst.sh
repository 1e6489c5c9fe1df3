# needs: ensure_user
# $1: install | upgrade | abort-upgrade
case "$1" in
install | upgrade)
	ensure_user
	;;
esac
exit 0
