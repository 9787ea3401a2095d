//! `/benchmark` and `/test-frame`: both run on a warm worker. Until a worker has loaded the model pack
//! they answer 503 rather than inventing numbers or an image.

use super::error::ApiError;

pub async fn benchmark() -> ApiError {
    ApiError::not_ready("no worker has loaded the model pack yet; /benchmark runs on a warm worker")
}

pub async fn test_frame() -> ApiError {
    ApiError::not_ready(
        "no worker has loaded the model pack yet; /test-frame renders on a warm worker",
    )
}
