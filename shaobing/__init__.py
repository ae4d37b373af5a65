"""The composition root: the `shaobing` command and the processes it starts, wired from the
domain packages. Nothing imports it."""
