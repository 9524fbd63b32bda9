using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.PromptTuning;

// PLACEHOLDER: to be written by the method's implementer.
public sealed class PromptTuner(PretrainedModel model, PromptTuningConfig config) : ITuner
{
    public AdapterConfig Config => throw new NotImplementedException();
    public IReadOnlyList<(string Name, Tensor Parameter)> TrainableParameters => throw new NotImplementedException();
    public IReadOnlyDictionary<string, Tensor> AdapterStateDict() => throw new NotImplementedException();
    public void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> state, string path) => throw new NotImplementedException();
    public int PrependedTokens => throw new NotImplementedException();
    public CausalLmInput PrepareCausal(CausalLmInput input) => throw new NotImplementedException();
    public Seq2SeqLmInput PrepareSeq2Seq(Seq2SeqLmInput input) => throw new NotImplementedException();
    public void Dispose() { }
}
