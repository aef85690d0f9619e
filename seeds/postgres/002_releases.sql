-- Releases of the musicapp users, with their tracks.
-- Titles with quotes and semicolons check that seed SQL is split only between statements.

INSERT INTO releases (title, artist, mbid, owner_id, released_on) VALUES
    ('OK Computer', 'Radiohead', 'b1392450-e666-3926-a536-22c65f834433', 1, '1997-05-21'),
    ('Dummy', 'Portishead', '76df3287-6cda-33eb-8e9a-044b5e15ffdd', 1, '1994-08-22'),
    ('Homogenic', 'Björk', 'c4f11a53-0ae4-3c9a-8e7c-3c2d0e1f5d29', 2, '1997-09-22'),
    ('Discovery', 'Daft Punk', '48117b82-8cc5-3d9d-9b2d-1c1a9f3c2a10', 3, '2001-03-12');

/* Tracks, joined to their release by title: the ids are the database's business. */
INSERT INTO tracks (release_id, position, title, duration_ms)
SELECT r.id, t.position, t.title, t.duration_ms
FROM (VALUES
    ('OK Computer', 1, 'Airbag', 284000),
    ('OK Computer', 2, 'Paranoid Android', 383000),
    ('OK Computer', 3, 'Subterranean Homesick Alien', 267000),
    ('OK Computer', 4, 'Karma Police', 264000),
    ('Dummy', 1, 'Mysterons', 302000),
    ('Dummy', 2, 'Sour Times', 251000),
    ('Dummy', 3, 'It''s a Fire', 228000),
    ('Dummy', 4, 'Glory Box', 306000),
    ('Homogenic', 1, 'Hunter', 255000),
    ('Homogenic', 2, 'Jóga', 305000),
    ('Homogenic', 3, 'All Is Full of Love', 272000),
    ('Discovery', 1, 'One More Time', 320000),
    ('Discovery', 2, 'Aerodynamic', 212000),
    ('Discovery', 3, 'Digital Love', 301000),
    ('Discovery', 4, 'Harder; Better; Faster; Stronger', 224000)
) AS t (release_title, position, title, duration_ms)
JOIN releases r ON r.title = t.release_title;

-- A helper for reports; its dollar-quoted body has a semicolon inside.
CREATE FUNCTION release_duration_ms(release integer) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(duration_ms), 0) FROM tracks WHERE release_id = release;
$$;
