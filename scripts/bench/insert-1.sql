\set k random(1, 100000)
INSERT INTO bench (k, v) VALUES (:k, repeat('v', 32));
