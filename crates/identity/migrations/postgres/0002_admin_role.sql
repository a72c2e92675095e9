-- The admin role (operations, made by `rickshaw admin create`, never by sign-up).
ALTER TABLE accounts DROP CONSTRAINT accounts_role_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_role_check CHECK (role IN ('rider', 'driver', 'admin'));
