-- A draft's slug is private. Refusing it to another organiser would reveal that the
-- draft exists, so slugs are unique among festivals the public can see (anything but a
-- draft), and among one creator's own drafts; publishing a draft whose slug a visible
-- festival took meanwhile is refused to its organiser (ERR_7005).
drop index festivals_slug_key;
create unique index festivals_slug_key on festivals (slug) where deleted_at is null and status <> 'DRAFT';
create unique index festivals_draft_slug_key on festivals (created_by, slug) where deleted_at is null and status = 'DRAFT';
