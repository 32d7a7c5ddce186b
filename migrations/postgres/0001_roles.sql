-- The two roles the service's pools switch to (SET ROLE); neither owns a table, so row-level
-- security holds for both. Roles are cluster-wide and several databases may run this migration at
-- the same time, so creating one tolerates that it already exists or is being created.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['twin_app', 'twin_system'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', role_name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created by another database's migration
        END;
        -- A schema owner that is not a superuser must be a member to SET ROLE to it.
        IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
           AND NOT pg_has_role(current_user, role_name, 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT %I TO %I', role_name, current_user);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$$;

GRANT USAGE ON SCHEMA public TO twin_app, twin_system;

-- /readyz asks, as twin_system, whether every migration is applied.
GRANT SELECT ON _sqlx_migrations TO twin_system;
