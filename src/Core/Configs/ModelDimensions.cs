namespace Peft.Onnx.Core.Configs;

/// <summary>The sizes every family has under its own key names, for code that works across families.</summary>
public sealed record ModelDimensions(int VocabSize, int HiddenSize, int NumLayers, int NumHeads, int NumKeyValueHeads, int HeadDim)
{
    /// <summary>Decoder layers of an encoder-decoder (equal to NumLayers for decoder-only models).</summary>
    public int NumDecoderLayers { get; init; } = NumLayers;
}
