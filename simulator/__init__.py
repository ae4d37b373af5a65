"""Simulated devices for demos, load and tests (`shaobing simulate`, `shaobing up --simulate`):
a fleet of smoke sensors and ID-card readers registered like real ones, publishing through the
broker what real ones publish and answering the hub's commands."""
