using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Models;

// PLACEHOLDER: to be written by the family's implementer.
public sealed class T5ForConditionalGeneration(T5Architecture architecture, ParameterStore parameters) : Seq2SeqLm(architecture, parameters)
{
    public override Tensor Encode(Tensor? inputIds, Tensor? attentionMask, Tensor? inputsEmbeds = null) => throw new NotImplementedException();
    public override LmOutput Forward(Seq2SeqLmInput input) => throw new NotImplementedException();
    public override long DecoderStartTokenId => throw new NotImplementedException();
}
