-- Erasing a whole creator (GDPR, `erase_creator`) removes the creator's own and agent accounts and
-- their refresh tokens too, as twin_app with the tenant set: the tenant policies of 0008 bound the
-- DELETE to that tenant's rows. The audit log is never erased (its entries hold no personal data
-- of end users and must outlive the erasure); failed-login counters per address belong to no tenant
-- and age out.
GRANT DELETE ON refresh_tokens, accounts TO twin_app;
