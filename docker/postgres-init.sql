-- Runs once, when the postgresql service initialises an empty data volume.
-- Temporal's auto-setup creates its own databases; this one is for the Django app.
CREATE DATABASE orders;
