-- Accounts deleted before deletion scrubbed personal data: scrub them now, and drop the
-- refresh tokens of their sessions.
update users
   set email = 'deleted-' || id || '@invalid', password_hash = '', display_name = '', updated_at = now()
 where deleted_at is not null and email not like 'deleted-%@invalid';
delete from refresh_tokens
 where session_id in (select s.id from sessions s join users u on u.id = s.user_id where u.deleted_at is not null);
