//! Photo evidence: `POST /api/v1/photos` with the image as the body (JPEG, PNG or WebP, at most 10 MiB)
//! stores it in the data directory under its SHA-256 and returns the digest, which workflow actions
//! (handling feedback, reports) then cite; `GET /api/v1/photos/{sha256}` serves it back. Storing by
//! content hash makes an upload idempotent and lets the audit trail prove which photo was meant.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cityops_auth::Permission;
use sha2::{Digest, Sha256};

use crate::auth::Authenticated;
use crate::{ApiError, AppState};

/// Largest photo accepted.
pub const MAX_PHOTO_BYTES: usize = 10 * 1024 * 1024;

/// The accepted types: (content type, file extension, magic bytes at the start).
const TYPES: &[(&str, &str, &[u8])] = &[
    ("image/jpeg", "jpg", &[0xff, 0xd8, 0xff]),
    (
        "image/png",
        "png",
        &[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a],
    ),
    ("image/webp", "webp", b"RIFF"),
];

fn path_of(dir: &Path, sha256: &str, extension: &str) -> PathBuf {
    dir.join(&sha256[..2]).join(format!("{sha256}.{extension}"))
}

/// Whether a digest names a stored photo (any accepted type).
pub fn exists(dir: &Path, sha256: &str) -> bool {
    is_digest(sha256)
        && TYPES
            .iter()
            .any(|(_, extension, _)| path_of(dir, sha256, extension).is_file())
}

fn is_digest(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) async fn upload(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((content_type, extension, magic)) = TYPES.iter().find(|(t, _, _)| *t == content_type)
    else {
        return Err(ApiError::Invalid(format!(
            "Content-Type {content_type:?}: a photo must be image/jpeg, image/png or image/webp"
        )));
    };
    if body.is_empty() {
        return Err(ApiError::Invalid("the photo is empty".into()));
    }
    if body.len() > MAX_PHOTO_BYTES {
        return Err(ApiError::Invalid(format!(
            "the photo has {} bytes, more than {MAX_PHOTO_BYTES}",
            body.len()
        )));
    }
    let webp_ok = *content_type != "image/webp" || body.get(8..12) == Some(b"WEBP".as_slice());
    if !body.starts_with(magic) || !webp_ok {
        return Err(ApiError::Invalid(format!(
            "the body is not a {content_type} image"
        )));
    }
    let sha256 = hex(&Sha256::digest(&body));
    let path = path_of(&state.photos_dir, &sha256, extension);
    let created = !path.is_file();
    if created {
        // Write to a temporary name and rename: a crash never leaves a half photo under its digest.
        let parent = path
            .parent()
            .ok_or_else(|| anyhow::anyhow!("photo path without a parent"))?;
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(anyhow::Error::from)?;
        let temporary = path.with_extension("part");
        tokio::fs::write(&temporary, &body)
            .await
            .map_err(anyhow::Error::from)?;
        tokio::fs::rename(&temporary, &path)
            .await
            .map_err(anyhow::Error::from)?;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body =
        serde_json::json!({ "sha256": sha256, "size": body.len(), "content_type": content_type });
    Ok((status, Json(body)).into_response())
}

pub(crate) async fn download(
    State(state): State<AppState>,
    auth: Authenticated,
    UrlPath(sha256): UrlPath<String>,
) -> Result<Response, ApiError> {
    auth.require(Permission::CasesRead)?;
    if !is_digest(&sha256) {
        return Err(ApiError::Invalid(format!(
            "{sha256:?} is not a lowercase hex SHA-256"
        )));
    }
    for (content_type, extension, _) in TYPES {
        let path = path_of(&state.photos_dir, &sha256, extension);
        if let Ok(bytes) = tokio::fs::read(&path).await {
            return Ok((
                [
                    (header::CONTENT_TYPE, *content_type),
                    (
                        header::CACHE_CONTROL,
                        "private, max-age=31536000, immutable",
                    ),
                ],
                bytes,
            )
                .into_response());
        }
    }
    Err(ApiError::NotFound(format!("no photo {sha256}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
