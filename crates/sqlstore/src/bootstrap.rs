//! The contents of a fresh database, as OpenNebula creates them on first start.

use crate::params;
use crate::sql::Conn;

pub struct BootstrapParams<'a> {
    pub oneadmin_name: &'a str,
    /// Already hashed: the database never sees a clear password.
    pub oneadmin_password_hash: &'a str,
    pub serveradmin_password_hash: &'a str,
    pub zone_endpoint: &'a str,
    /// The templates of datastores 0 (system), 1 (default) and 2 (files), as their drivers'
    /// settings write them (`Datastore::insert`).
    pub datastore_templates: [&'a str; 3],
    /// The TOKEN_PASSWORD of users 0 and 1, which `UserPool::allocate` gives every user.
    pub token_passwords: [&'a str; 2],
}

pub fn is_bootstrapped(conn: &Conn) -> crate::sql::Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM system_attributes WHERE name = 'BOOTSTRAP'",
        (),
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Creates groups 0 and 1 (users with the SUNSTONE views `GroupPool`'s constructor gives it), users 0 (oneadmin) and 1 (serveradmin), zone 0 and the id counters.
/// Runs once, locally, on a solo server's empty database: never through the log.
pub fn bootstrap(conn: &mut Conn, p: &BootstrapParams<'_>) -> crate::sql::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "INSERT INTO group_pool (oid, name) VALUES (0, 'oneadmin');
         INSERT INTO group_pool (oid, name, template) VALUES (1, 'users',
            'SUNSTONE=[
  DEFAULT_VIEW=\"cloud\",
  GROUP_ADMIN_DEFAULT_VIEW=\"groupadmin\",
  GROUP_ADMIN_VIEWS=\"groupadmin,cloud\",
  VIEWS=\"cloud\" ]
');
         INSERT INTO user_groups (uid, gid) VALUES (0, 0), (1, 0);
         INSERT INTO cluster_pool (oid, name) VALUES (0, 'default');
         INSERT INTO pool_control (tablename, last_oid) VALUES
            ('user_pool', 1), ('group_pool', 99), ('zone_pool', 99), ('acl', 2),
            ('host_pool', -1), ('cluster_pool', 99), ('template_pool', -1), ('vm_pool', -1),
            ('datastore_pool', 99), ('image_pool', -1), ('vnet_pool', -1),
            ('document_pool', -1), ('hook_pool', -1),
            ('vn_template_pool', -1), ('vmgroup_pool', -1), ('backupjob_pool', -1),
            ('vrouter_pool', -1);
         INSERT INTO datastore_pool (oid, name, uid, gid, perms, type, ds_mad, tm_mad) VALUES
            (0, 'system', 0, 0, 416, 1, '-', 'local'),
            (1, 'default', 0, 0, 416, 0, 'fs', 'local'),
            (2, 'files', 0, 0, 416, 2, 'fs', 'local');
         INSERT INTO cluster_datastore_relation (cid, oid) VALUES (0, 0), (0, 1), (0, 2);",
    )?;
    // OpenNebula's three default rules (AclManager): users may create their own VMs, images,
    // templates...; everyone may use the zone and the marketplaces.
    {
        use wire::acl::*;
        let users_create = VM | IMAGE | TEMPLATE | DOCUMENT | SECGROUP | VMGROUP | BACKUPJOB;
        let rules = [
            (0, GROUP_ID | 1, users_create | ALL_ID, CREATE),
            (1, ALL_ID, ZONE | ALL_ID, USE),
            (2, ALL_ID, MARKETPLACE | MARKETPLACEAPP | ALL_ID, USE),
        ];
        for (oid, user, resource, rights) in rules {
            tx.execute(
                "INSERT INTO acl (oid, user, resource, rights, zone) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    oid,
                    user as i64,
                    resource as i64,
                    rights as i64,
                    ALL_ID as i64
                ],
            )?;
        }
    }
    tx.execute(
        "UPDATE cluster_pool SET template = ?1 WHERE oid = 0",
        params![crate::objects::cluster::NEW_TEMPLATE],
    )?;
    for (oid, template) in p.datastore_templates.iter().enumerate() {
        tx.execute(
            "UPDATE datastore_pool SET template = ?2 WHERE oid = ?1",
            params![oid as i64, *template],
        )?;
    }
    crate::txn::run_all(&tx, &crate::objects::vdc::bootstrap_default(0))?;
    crate::txn::run_all(&tx, &crate::objects::market::bootstrap_default(0))?;
    crate::txn::run_all(&tx, &crate::objects::secgroup::bootstrap_default())?;
    tx.execute(
        "INSERT INTO user_pool (oid, name, password, auth_driver, gid, template)
         VALUES (0, ?1, ?2, 'core', 0, ?3)",
        params![
            p.oneadmin_name,
            p.oneadmin_password_hash,
            format!("TOKEN_PASSWORD=\"{}\"", p.token_passwords[0])
        ],
    )?;
    tx.execute(
        "INSERT INTO user_pool (oid, name, password, auth_driver, gid, template)
         VALUES (1, 'serveradmin', ?1, 'server_cipher', 0, ?2)",
        params![
            p.serveradmin_password_hash,
            format!("TOKEN_PASSWORD=\"{}\"", p.token_passwords[1])
        ],
    )?;
    tx.execute(
        "INSERT INTO zone_pool (oid, name, state, endpoint) VALUES (0, 'OpenNebula', ?1, ?2)",
        params![wire::ZoneState::Enabled.as_i64(), p.zone_endpoint],
    )?;
    tx.execute(
        "INSERT INTO system_attributes (name, body) VALUES ('BOOTSTRAP', '1')",
        (),
    )?;
    tx.commit()
}
