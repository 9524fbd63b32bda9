namespace Peft.Onnx.Runtime.Chat;

/// <summary>Jinja's undefined: a missing variable, key or attribute; prints as "", is false, is not defined.</summary>
internal sealed class Undefined
{
    public static readonly Undefined Value = new();
    private Undefined() { }
}
