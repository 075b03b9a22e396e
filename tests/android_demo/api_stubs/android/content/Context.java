package android.content;

import android.content.res.AssetManager;

public abstract class Context {
    public abstract AssetManager getAssets();

    public final String getString(int resId) { throw new UnsupportedOperationException("stub"); }
}
