//! The SQL both account stores run (`$n` parameters, `TRUE`/`FALSE` and `RETURNING` work in
//! SQLite and PostgreSQL alike), as one macro implementing `AccountStore` for a type with a `pool`
//! to read with and `writes` (`platform::store::Writes`: SQLite's group commit, PostgreSQL's
//! pool) whose transaction bodies write. The invoking module provides what differs: `IdColumn`
//! (how an id is stored: a `uuid` in PostgreSQL, text in SQLite), `id_of` and `uuid_of` between
//! it and a `Uuid`, and `read_account` (a row of `account_columns!()`).

macro_rules! impl_account_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl super::AccountStore for $store {
            async fn create_account(
                &self,
                account: &crate::Account,
                password_hash: &str,
            ) -> Result<(), super::StoreError> {
                let data = (account.clone(), password_hash.to_owned());
                self.writes.transaction(data, |tx, (account, password_hash)| Box::pin(async move {
                    let vehicle = account.vehicle.as_ref();
                    sqlx::query(
                        "INSERT INTO accounts (id, email, name, role, password_hash, vehicle_package, vehicle_plate, vehicle_model, created_at_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(id_of(*account.id.as_uuid()))
                    .bind(account.email.as_str())
                    .bind(account.name.as_str())
                    .bind(account.role.name())
                    .bind(password_hash)
                    .bind(vehicle.map(|v| v.package.name()))
                    .bind(vehicle.map(|v| v.plate.as_str()))
                    .bind(vehicle.map(|v| v.model.as_str()))
                    .bind(account.created_at.as_millis())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| {
                        if super::is_unique_violation(&e) {
                            super::StoreError::EmailTaken(account.email.clone())
                        } else {
                            e.into()
                        }
                    })?;
                    Ok(())
                })).await
            }

            async fn account(&self, id: domain::AccountId) -> Result<Option<crate::Account>, super::StoreError> {
                sqlx::query(concat!(
                    "SELECT ",
                    super::account_columns!(),
                    " FROM accounts WHERE id = $1"
                ))
                .bind(id_of(*id.as_uuid()))
                .fetch_optional(&self.pool)
                .await?
                .map(|row| read_account(&row))
                .transpose()
            }

            async fn credentials(&self, email: &domain::Email) -> Result<Option<super::Credentials>, super::StoreError> {
                sqlx::query(concat!(
                    "SELECT ",
                    super::account_columns!(),
                    ", password_hash FROM accounts WHERE email = $1"
                ))
                .bind(email.as_str())
                .fetch_optional(&self.pool)
                .await?
                .map(|row| {
                    Ok(super::Credentials {
                        account: read_account(&row)?,
                        password_hash: row.try_get("password_hash")?,
                    })
                })
                .transpose()
            }

            async fn set_vehicle(
                &self,
                id: domain::AccountId,
                vehicle: &domain::Vehicle,
            ) -> Result<Option<crate::Account>, super::StoreError> {
                self.writes.transaction((id, vehicle.clone()), |tx, (id, vehicle)| Box::pin(async move {
                    sqlx::query(concat!(
                        "UPDATE accounts SET vehicle_package = $1, vehicle_plate = $2, vehicle_model = $3 WHERE id = $4 RETURNING ",
                        super::account_columns!()
                    ))
                    .bind(vehicle.package.name())
                    .bind(vehicle.plate.as_str())
                    .bind(vehicle.model.as_str())
                    .bind(id_of(*id.as_uuid()))
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| read_account(&row))
                    .transpose()
                })).await
            }

            async fn add_refresh_token(&self, grant: &super::RefreshGrant) -> Result<(), super::StoreError> {
                self.writes.transaction(grant.clone(), |tx, grant| Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO refresh_tokens (token_hash, account_id, issued_at_ms, expires_at_ms, revoked) VALUES ($1, $2, $3, $4, FALSE)",
                    )
                    .bind(grant.token.as_str())
                    .bind(id_of(*grant.account.as_uuid()))
                    .bind(grant.issued_at.as_millis())
                    .bind(grant.expires_at.as_millis())
                    .execute(&mut *tx)
                    .await?;
                    Ok(())
                })).await
            }

            async fn rotate_refresh_token(
                &self,
                presented: &super::TokenHash,
                next: &super::TokenHash,
                expires_at: domain::Timestamp,
                now: domain::Timestamp,
            ) -> Result<super::Rotation, super::StoreError> {
                // PostgreSQL (read committed): a concurrent rotation of the same token waits for this
                // one's row lock, then re-checks `revoked = FALSE`, finds it spent and takes the reuse
                // path. SQLite: the database's one writer runs rotations one after another.
                let data = (presented.clone(), next.clone(), expires_at, now);
                self.writes.transaction(data, |tx, (presented, next, expires_at, now)| Box::pin(async move {
                    let spent: Option<IdColumn> = sqlx::query_scalar(
                        "UPDATE refresh_tokens SET revoked = TRUE
                         WHERE token_hash = $1 AND revoked = FALSE AND expires_at_ms > $2 RETURNING account_id",
                    )
                    .bind(presented.as_str())
                    .bind(now.as_millis())
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(account) = spent {
                        sqlx::query(
                            "INSERT INTO refresh_tokens (token_hash, account_id, issued_at_ms, expires_at_ms, revoked) VALUES ($1, $2, $3, $4, FALSE)",
                        )
                        .bind(next.as_str())
                        .bind(&account)
                        .bind(now.as_millis())
                        .bind(expires_at.as_millis())
                        .execute(&mut *tx)
                        .await?;
                        return Ok(super::Rotation::Rotated {
                            account: domain::AccountId::from_uuid(uuid_of(&account)?),
                        });
                    }
                    let found =
                        sqlx::query("SELECT account_id, revoked FROM refresh_tokens WHERE token_hash = $1")
                            .bind(presented.as_str())
                            .fetch_optional(&mut *tx)
                            .await?;
                    let Some(row) = found else {
                        return Ok(super::Rotation::Unknown);
                    };
                    let account: IdColumn = row.try_get("account_id")?;
                    if !row.try_get::<bool, _>("revoked")? {
                        return Ok(super::Rotation::Expired);
                    }
                    sqlx::query(
                        "UPDATE refresh_tokens SET revoked = TRUE WHERE account_id = $1 AND revoked = FALSE",
                    )
                    .bind(&account)
                    .execute(&mut *tx)
                    .await?;
                    Ok(super::Rotation::Reused {
                        account: domain::AccountId::from_uuid(uuid_of(&account)?),
                    })
                })).await
            }

            async fn revoke_refresh_token(&self, token: &super::TokenHash) -> Result<bool, super::StoreError> {
                self.writes.transaction(token.clone(), |tx, token| Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE refresh_tokens SET revoked = TRUE WHERE token_hash = $1 AND revoked = FALSE",
                    )
                    .bind(token.as_str())
                    .execute(&mut *tx)
                    .await?;
                    Ok(done.rows_affected() > 0)
                })).await
            }

            async fn revoke_all_refresh_tokens(&self, account: domain::AccountId) -> Result<u64, super::StoreError> {
                self.writes.transaction(account, |tx, account| Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE refresh_tokens SET revoked = TRUE WHERE account_id = $1 AND revoked = FALSE",
                    )
                    .bind(id_of(*account.as_uuid()))
                    .execute(&mut *tx)
                    .await?;
                    Ok(done.rows_affected())
                })).await
            }

            async fn record_login_attempt(
                &self,
                id: uuid::Uuid,
                email: &domain::Email,
                at: domain::Timestamp,
            ) -> Result<(), super::StoreError> {
                self.writes.transaction((id, email.clone(), at), |tx, (id, email, at)| Box::pin(async move {
                    sqlx::query("INSERT INTO login_attempts (id, email, at_ms) VALUES ($1, $2, $3)")
                        .bind(id_of(*id))
                        .bind(email.as_str())
                        .bind(at.as_millis())
                        .execute(&mut *tx)
                        .await?;
                    Ok(())
                })).await
            }

            async fn login_attempts_since(
                &self,
                email: &domain::Email,
                since: domain::Timestamp,
            ) -> Result<Vec<domain::Timestamp>, super::StoreError> {
                let times: Vec<i64> = sqlx::query_scalar(
                    "SELECT at_ms FROM login_attempts WHERE email = $1 AND at_ms > $2 ORDER BY at_ms",
                )
                .bind(email.as_str())
                .bind(since.as_millis())
                .fetch_all(&self.pool)
                .await?;
                Ok(times.into_iter().map(domain::Timestamp::from_millis).collect())
            }

            async fn forget_login_attempt(&self, id: uuid::Uuid) -> Result<(), super::StoreError> {
                self.writes.transaction(id, |tx, id| Box::pin(async move {
                    sqlx::query("DELETE FROM login_attempts WHERE id = $1")
                        .bind(id_of(*id))
                        .execute(&mut *tx)
                        .await?;
                    Ok(())
                })).await
            }

            async fn forget_login_attempts_before(&self, before: domain::Timestamp) -> Result<u64, super::StoreError> {
                self.writes.transaction(before, |tx, before| Box::pin(async move {
                    let done = sqlx::query("DELETE FROM login_attempts WHERE at_ms < $1")
                        .bind(before.as_millis())
                        .execute(&mut *tx)
                        .await?;
                    Ok(done.rows_affected())
                })).await
            }
        }
    };
}

pub(super) use impl_account_store;
