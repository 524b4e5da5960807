//! List pagination as Dfns does it: `?limit=&paginationToken=` in, `{items, nextPageToken}` out.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Query string of every list endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams, ToSchema)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1..=100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `nextPageToken` of the previous page.
    #[param(max_length = 512)]
    pub pagination_token: Option<String>,
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub items: Vec<T>,
    /// Present when more items follow; pass it back as `paginationToken`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
