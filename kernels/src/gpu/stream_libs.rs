//! The vendor libraries bound to one stream: cuBLAS and cuBLASLt always, cuDNN where it loads.

use super::blas::Blas;
use super::blas_lt::BlasLt;
use super::context::Stream;
use super::dnn::Dnn;
use super::libs;
use crate::error::Result;

pub struct StreamLibraries {
    pub blas: Blas,
    pub blas_lt: BlasLt,
    /// None where cuDNN is not on this machine; convolutions then take coloc's own paths.
    pub dnn: Option<Dnn>,
}

impl StreamLibraries {
    /// Handles whose work goes to `stream`. cuDNN's absence is not an error; a cuDNN that is
    /// present but will not start is.
    pub fn new(stream: &Stream) -> Result<StreamLibraries> {
        let blas = Blas::new(stream)?;
        let blas_lt = BlasLt::new(stream)?;
        let dnn = if libs::cudnn_present() { Some(Dnn::new(stream)?) } else { None };
        Ok(StreamLibraries { blas, blas_lt, dnn })
    }
}
