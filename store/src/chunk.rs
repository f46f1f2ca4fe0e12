//! Compressed sample chunks: the Gorilla encoding (delta-of-delta timestamps, XOR'd floats) that
//! Prometheus' `chunkenc.XORChunk` uses, over a small bit stream.

mod bits;
mod xor;

pub(crate) use xor::{XorAppender, XorIter};
