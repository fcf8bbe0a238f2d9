//! The protobuf codec of both servers: tonic's prost codec, except that a
//! message that does not decode is the sender's mistake, INVALID_ARGUMENT,
//! where tonic answers INTERNAL (which would say the receiver has a bug).

use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// [`ProstCodec`] with [`MessageDecoder`]; the generated clients and servers
/// use it (`build.rs`).
#[derive(Debug)]
pub struct MessageCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for MessageCodec<T, U> {
    fn default() -> Self {
        MessageCodec(ProstCodec::default())
    }
}

impl<T, U> Codec for MessageCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(self.0.decoder())
    }
}

/// [`ProstDecoder`], whose every error is a message that does not decode:
/// INVALID_ARGUMENT, with prost's reason.
#[derive(Debug)]
pub struct MessageDecoder<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0
            .decode(buf)
            .map_err(|e| Status::invalid_argument(e.message()))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
