# needs: ensure_user
# %pre, $1: 1 on install, 2 (or more) on upgrade.
ensure_user
exit 0
