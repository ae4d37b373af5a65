"""Services `shaobing up` starts itself when no external ones are configured."""
