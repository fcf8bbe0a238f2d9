INSERT INTO bench (k, v) SELECT g, repeat('v', 32) FROM generate_series(1, 100) AS g;
