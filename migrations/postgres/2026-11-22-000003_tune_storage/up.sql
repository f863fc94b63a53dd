-- Leave room in each page so a position's update can stay on its page (a HOT update,
-- no index writes): feeds update the same positions all day.
ALTER TABLE inventory_positions SET (fillfactor = 70);
-- A batch's records are written once and read once: compressing ~1 MB of JSON on every
-- POST costs more than the space it saves.
ALTER TABLE batches ALTER COLUMN entities SET STORAGE EXTERNAL;
