using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>
/// One PEFT method attached to a base model (PEFT's tuner + its layers). What differs per method lives in
/// the implementing type: injected methods (LoRA, IA3) wrap linear modules and leave inputs alone; prompt
/// methods (prompt tuning, p-tuning, prefix tuning) rewrite the inputs. <see cref="PeftModel"/> drives it.
/// </summary>
public interface ITuner : IDisposable
{
    /// <summary>The adapter config as attached (PEFT's PreparedFor / WithModelDefaults applied).</summary>
    AdapterConfig Config { get; }

    /// <summary>
    /// Trainable parameters under PEFT's named_parameters() names, e.g.
    /// "base_model.model.transformer.h.0.self_attention.query_key_value.lora_A.default.weight",
    /// "prompt_encoder.default.embedding.weight", "prompt_encoder.default.transform.0.weight".
    /// </summary>
    IReadOnlyList<(string Name, Tensor Parameter)> TrainableParameters { get; }

    /// <summary>
    /// The state PEFT's save_pretrained writes to adapter_model.safetensors, under its saved names
    /// ("...lora_A.weight" without ".default", "prompt_embeddings" = the prompt encoder's output for
    /// p-tuning / prefix projection). Tensors are fresh copies on the CPU.
    /// </summary>
    IReadOnlyDictionary<string, Tensor> AdapterStateDict();

    /// <summary>Loads saved adapter tensors (names as in adapter_model.safetensors), checking names and shapes.</summary>
    void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> state, string path);

    /// <summary>Virtual tokens this method prepends to the sequence the caller sees (prompt tuning / p-tuning), else 0.</summary>
    int PrependedTokens { get; }

    /// <summary>The base-model inputs PEFT's forward builds for a causal LM (prompts prepended, prefix as past, masks and labels extended).</summary>
    CausalLmInput PrepareCausal(CausalLmInput input);

    /// <summary>The same for an encoder-decoder (PEFT's PeftModelForSeq2SeqLM.forward).</summary>
    Seq2SeqLmInput PrepareSeq2Seq(Seq2SeqLmInput input);
}
