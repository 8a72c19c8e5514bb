-- A sqlite3 script: tables built by recursive CTEs, indexes, joins, aggregates, window
-- functions, string functions, a transaction rolled back, and VACUUM on an in-memory db.
PRAGMA cache_size = 200;
CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, price REAL, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40000)
INSERT INTO item SELECT i, printf('item-%05d', i), i % 97, (i * 7919 % 10007) / 100.0,
                        substr(printf('%x', i * 2654435761 % 4294967296) || printf('%.*c', i % 300, 'x'), 1, 300)
FROM n;
CREATE INDEX item_grp ON item(grp, price);
CREATE TABLE grp(id INTEGER PRIMARY KEY, label TEXT);
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 96)
INSERT INTO grp SELECT i, 'group ' || char(65 + i % 26) || i FROM n;
SELECT count(*), sum(price), max(length(note)) FROM item;
SELECT g.label, count(*), round(avg(i.price), 3), min(i.name), max(i.name)
  FROM item i JOIN grp g ON g.id = i.grp GROUP BY g.id ORDER BY g.id LIMIT 12;
SELECT name, price, rank() OVER (PARTITION BY grp ORDER BY price DESC, id) AS r
  FROM item WHERE grp IN (3, 50) ORDER BY grp, r LIMIT 10;
SELECT group_concat(name, ',') FROM (SELECT name FROM item WHERE id % 4999 = 0 ORDER BY id);
BEGIN;
DELETE FROM item WHERE grp < 50;
SELECT count(*) FROM item;
ROLLBACK;
SELECT count(*) FROM item;
UPDATE item SET note = upper(note) || note WHERE id % 3 = 0;
SELECT sum(length(note)), count(DISTINCT substr(note, 1, 5)) FROM item;
DELETE FROM item WHERE id % 2 = 0;
VACUUM;
SELECT count(*), total(price) FROM item;
SELECT grp, count(*) FROM item GROUP BY grp HAVING count(*) > 206 ORDER BY grp;
