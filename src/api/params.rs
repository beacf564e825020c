//! Request parameters: query string (and form body) pairs, validated one by one
//! into domain types with a message that names the parameter.

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

use crate::api::error::ApiError;
use crate::store::ExecutionId;

/// The decoded `name=value` pairs of a request, in order.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_query(query: Option<&str>) -> Result<Self, ApiError> {
        let pairs = match query {
            Some(query) => serde_urlencoded::from_str(query).map_err(|err| {
                ApiError::BadRequest(format!("the query string is not valid: {err}"))
            })?,
            None => Vec::new(),
        };
        Ok(Self(pairs))
    }

    /// Adds the pairs of an `application/x-www-form-urlencoded` body, if that is what it is.
    pub fn extend_with_form(&mut self, headers: &HeaderMap, body: &Bytes) -> Result<(), ApiError> {
        if body.is_empty() {
            return Ok(());
        }
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Ok(());
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|err| ApiError::BadRequest(format!("the form body is not valid: {err}")))?;
        self.0.extend(pairs);
        Ok(())
    }

    pub fn optional(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.optional(name)
            .ok_or_else(|| ApiError::BadRequest(format!("missing parameter {name}")))
    }

    pub fn execution_id(&self, name: &str) -> Result<ExecutionId, ApiError> {
        let raw = self.required(name)?;
        ExecutionId::parse(raw).map_err(|_| {
            ApiError::BadRequest(format!(
                "parameter {name} must be a decimal number, got {raw:?}"
            ))
        })
    }

    pub fn optional_execution_id(&self, name: &str) -> Result<Option<ExecutionId>, ApiError> {
        match self.optional(name) {
            None | Some("") => Ok(None),
            Some(_) => self.execution_id(name).map(Some),
        }
    }

    pub fn optional_number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.optional(name) {
            None | Some("") => Ok(None),
            Some(raw) => ExecutionId::parse(raw).map(|n| Some(n.0)).map_err(|_| {
                ApiError::BadRequest(format!(
                    "parameter {name} must be a decimal number, got {raw:?}"
                ))
            }),
        }
    }

    /// A yes/no parameter: `true`/`1`/`yes` or `false`/`0`/`no`.
    pub fn optional_bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.optional(name) {
            None | Some("") => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(raw) => Err(ApiError::BadRequest(format!(
                "parameter {name} must be true or false, got {raw:?}"
            ))),
        }
    }

    /// The `input_value_NAME` pairs, as (NAME, value).
    pub fn input_values(&self) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter_map(|(key, value)| {
                key.strip_prefix("input_value_")
                    .map(|name| (name.to_owned(), value.clone()))
            })
            .collect()
    }
}
