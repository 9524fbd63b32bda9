using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Architectures;

// PLACEHOLDER: to be written by the family's implementer.
public sealed class Gpt2Architecture(Gpt2Config config) : Architecture
{
    public override ModelConfig Config { get; } = config;
    public override string ClassName => throw new NotImplementedException();
    public override IReadOnlyList<ParameterSpec> Parameters => throw new NotImplementedException();
    public override IReadOnlyList<LinearSpec> Linears => throw new NotImplementedException();
    public override string WordEmbeddings => throw new NotImplementedException();
}
