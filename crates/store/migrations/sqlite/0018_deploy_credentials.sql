-- The stored credential a deployment task signs in with (sftp:, ssh:), kept beside the
-- sealed task so that a credential in use is found without opening every task.
ALTER TABLE deploy_tasks ADD COLUMN credential TEXT;
