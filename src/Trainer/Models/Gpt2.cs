using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Models;

// PLACEHOLDER: to be written by the family's implementer.
public sealed class Gpt2LmHeadModel(Gpt2Architecture architecture, ParameterStore parameters) : CausalLm(architecture, parameters)
{
    public override LmOutput Forward(CausalLmInput input) => throw new NotImplementedException();
}
