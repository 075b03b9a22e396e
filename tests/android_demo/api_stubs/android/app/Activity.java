package android.app;

import android.content.Context;
import android.content.res.AssetManager;
import android.os.Bundle;
import android.view.View;

public class Activity extends Context {
    protected void onCreate(Bundle savedInstanceState) {}

    protected void onDestroy() {}

    public void setContentView(int layoutResID) { throw new UnsupportedOperationException("stub"); }

    public <T extends View> T findViewById(int id) { throw new UnsupportedOperationException("stub"); }

    public final void runOnUiThread(Runnable action) { throw new UnsupportedOperationException("stub"); }

    public boolean isDestroyed() { throw new UnsupportedOperationException("stub"); }

    @Override
    public AssetManager getAssets() { throw new UnsupportedOperationException("stub"); }
}
