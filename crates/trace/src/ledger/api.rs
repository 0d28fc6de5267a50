//! (being written)

use shuxiang_http::ApiRoute;

pub fn routes() -> Vec<ApiRoute> {
    Vec::new()
}
