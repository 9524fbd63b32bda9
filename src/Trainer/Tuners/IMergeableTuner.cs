using Peft.Onnx.Trainer.Modeling;

namespace Peft.Onnx.Trainer.Tuners;

/// <summary>
/// A tuner whose adapter can be folded into the base weights (PEFT's merge_adapter / unmerge_adapter /
/// merge_and_unload / unload on LoRA and IA3 models), in libtorch: `forward --merge` goes through it. The exporter
/// merges with its own passes over the checkpoint's tensors, without libtorch.
/// </summary>
public interface IMergeableTuner : ITuner
{
    /// <summary>True while every adapted module has its adapter folded into the base weights.</summary>
    bool Merged { get; }

    /// <summary>
    /// Folds the adapter into the base weights (merge_adapter); the layers stay and forward the base only. Layers
    /// already merged are skipped (PEFT would warn and add the adapter a second time).
    /// </summary>
    void Merge();

    /// <summary>Takes the adapter back out of the base weights (unmerge_adapter).</summary>
    void Unmerge();

    /// <summary>
    /// merge_and_unload: merges, removes every wrapper and leaves the trained modules_to_save copies in place of
    /// the originals. The returned base model (the same object the tuner was attached to) is a plain model; the
    /// tuner is empty afterwards.
    /// </summary>
    PretrainedModel MergeAndUnload();

    /// <summary>
    /// unload: removes the wrappers without merging. As in PEFT, weights merged earlier stay merged and the
    /// modules_to_save copies stay in place of the originals; call <see cref="Unmerge"/> first for the original base.
    /// </summary>
    PretrainedModel Unload();
}
