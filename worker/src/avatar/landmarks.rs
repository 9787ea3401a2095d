//! Index lists into MediaPipe's 468-point face mesh (canonical topology). "Right" is the subject's right
//! (the left side of the picture).

/// Outer lip contour, clockwise from the right corner (61) along the lower lip.
pub const LIPS_OUTER: [usize; 20] = [
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
];
/// Inner lip contour, from the right inner corner (78) along the lower lip.
pub const LIPS_INNER: [usize; 20] = [
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191,
];
/// Upper outer lip, right corner to left corner.
pub const OUTER_UPPER: [usize; 11] = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291];
/// Lower outer lip without corners, right to left.
pub const OUTER_LOWER: [usize; 9] = [146, 91, 181, 84, 17, 314, 405, 321, 375];
/// Upper inner lip, right inner corner to left inner corner.
pub const INNER_UPPER: [usize; 11] = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308];
/// Lower inner lip without corners, right to left.
pub const INNER_LOWER: [usize; 9] = [95, 88, 178, 87, 14, 317, 402, 318, 324];
/// Chin and the skin between lower lip and chin.
pub const CHIN: [usize; 17] = [
    152, 148, 176, 149, 150, 377, 400, 378, 379, 175, 199, 200, 18, 83, 313, 32, 262,
];
/// Jaw line, right ear to left ear through the chin.
pub const JAW: [usize; 17] = [
    234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397,
];
/// Lower jaw sides (move with the jaw, less than the chin).
pub const JAW_SIDE: [usize; 6] = [136, 172, 58, 365, 397, 288];
/// Points that stay put when the mouth moves: nose, eye corners, cheekbones, upper face oval.
pub const FIXED: [usize; 24] = [
    1, 4, 5, 195, 168, 33, 263, 133, 362, 234, 454, 93, 323, 127, 356, 132, 361, 2, 98, 327, 10,
    151, 70, 300,
];
/// Right eye: upper lid (outer to inner corner) and lower lid.
pub const RIGHT_EYE_UPPER: [usize; 7] = [246, 161, 160, 159, 158, 157, 173];
pub const RIGHT_EYE_LOWER: [usize; 9] = [33, 7, 163, 144, 145, 153, 154, 155, 133];
/// Left eye: upper lid and lower lid.
pub const LEFT_EYE_UPPER: [usize; 7] = [466, 388, 387, 386, 385, 384, 398];
pub const LEFT_EYE_LOWER: [usize; 9] = [263, 249, 390, 373, 374, 380, 381, 382, 362];
/// Eyebrows (fixed during blinks).
pub const BROWS: [usize; 10] = [70, 63, 105, 66, 107, 336, 296, 334, 293, 300];

/// Forehead top and chin bottom: the face height.
pub const FOREHEAD: usize = 10;
pub const CHIN_BOTTOM: usize = 152;
pub const MOUTH_RIGHT: usize = 61;
pub const MOUTH_LEFT: usize = 291;
pub const UPPER_LIP_INNER: usize = 13;
pub const LOWER_LIP_INNER: usize = 14;
