-- repeat-incident sightings (hashed person and address keys)
CREATE TABLE IF NOT EXISTS incident_sightings (key TEXT NOT NULL, incident TEXT NOT NULL, occurred TEXT NOT NULL,
  seq BIGINT NOT NULL, PRIMARY KEY (key, incident));
CREATE INDEX IF NOT EXISTS incident_sightings_incident ON incident_sightings (incident)
